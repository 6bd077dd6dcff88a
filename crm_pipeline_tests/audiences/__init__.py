"""audiences"""
