"""Local tools for fluxrelay (never deployed): the WaveSpeed stand-in (`fluxrelay_local.standin`)
and the local stack."""
