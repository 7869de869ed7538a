"""mercato.explorer"""
