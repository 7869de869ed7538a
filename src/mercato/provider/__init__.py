"""mercato.provider"""
