"""Bearer-token verification, the Principal and its role assignments."""
