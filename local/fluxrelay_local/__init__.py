"""Local tools for fluxrelay (never deployed): the WaveSpeed stand-in (`fluxrelay_local.standin`),
the local stack (`fluxrelay_local.stack`, configured by `fluxrelay_local.config`) and benchmarks."""
