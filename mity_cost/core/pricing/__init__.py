"""Current list prices (genai-prices and the user's overrides), price audits and pre-flight estimates."""
