pytest_plugins = ["lead_scoring_tests.fixtures.stack"]
