"""mercato.matching"""
