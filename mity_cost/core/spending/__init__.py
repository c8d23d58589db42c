"""Spending over time: the history, budgets, alerts, forecasts and reports."""
