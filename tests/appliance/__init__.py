"""Tests of the code the appliances share."""
