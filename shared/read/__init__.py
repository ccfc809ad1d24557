"""Reading the mirror: the read library (`reader`) and the operator's status (`status`). May import the model."""
