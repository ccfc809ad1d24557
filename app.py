#!/usr/bin/env python3
"""CDK entry point (`cdk synth`, `make synth`). Offline: no AWS account, credentials or Docker needed."""

from __future__ import annotations

import os

from aws_cdk import App

from infra.application import build


def main() -> None:
    app = App()
    build(app, environ=os.environ)
    app.synth()


if __name__ == "__main__":
    main()
