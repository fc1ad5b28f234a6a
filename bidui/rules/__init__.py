"""The rules engine: loads sql/rules/*.sql, binds parameters from config, runs them on a night."""
