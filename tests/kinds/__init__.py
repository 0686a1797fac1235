"""Job kinds that exist only in the tests."""
