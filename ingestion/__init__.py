"""How SDOH data gets in: Census API client, boundary files, linking, validation, publishing."""
