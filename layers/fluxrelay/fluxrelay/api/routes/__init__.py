"""One Powertools `Router` per resource; `fluxrelay.api.app.create_app` includes them all."""
