"""mercato.simulation"""
