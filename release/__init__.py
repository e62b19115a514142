"""Delivery that gates deployments (docs/delivery.md): a release built once per commit and pushed to the
registry of the target environment, an SBOM per image, a manifest of image digests, deployment by
digest, the staging gate, promotion of the same manifest, and the release page.

Stages (each a make target and a `python -m release` command): build (make release), deploy
(make deploy), gate (make gate), promote (make promote), page (make release-page), pipeline.
"""
