"""mercato.requester"""
