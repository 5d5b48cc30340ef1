"""API input and output shapes (pydantic), with the documented upper bounds of every field."""
