def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a longer test (tens of seconds); still run by default")
