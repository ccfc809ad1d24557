"""Change events out: derive what apps hear from the store's stream, and drop what is no longer true.

`derive` turns stream records into change events; `guard` drops those that assert something already deleted. May
import the model only.
"""
