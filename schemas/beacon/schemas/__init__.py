"""Beacon's contracts: the question/model/region catalogue, the submit command and the events."""
