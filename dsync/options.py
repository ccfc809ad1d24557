"""Options every operator command shares: where it acts (`--aws-endpoint`, `--stack`, `--region`, `--profile`), the
WorkOS API it talks to, and how it prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from dsync.arguments import http_url
from dsync.errors import CommandError
from shared.resources import DEFAULT_STACK_NAME


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))


def target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--aws-endpoint",
        type=http_url,
        default=os.environ.get("AWS_ENDPOINT_URL") or None,
        help="AWS endpoint of the local stack, e.g. http://127.0.0.1:4566 (default: $AWS_ENDPOINT_URL); "
        "without it, the deployed stack is used",
    )
    parser.add_argument("--stack", default=DEFAULT_STACK_NAME, help="deployed stack name (default: %(default)s)")
    parser.add_argument(
        "--region",
        default=None,
        help="AWS region of the deployed stack (default: $AWS_REGION, else the profile's, as the AWS CLI)",
    )
    parser.add_argument("--profile", default=None, help="AWS profile of ~/.aws/config (default: $AWS_PROFILE)")


def target(args: argparse.Namespace) -> Any:
    """Where the command acts, said on stderr first: a leftover $AWS_ENDPOINT_URL must never pass for production."""
    from dsync.targets import TargetError, resolve_target

    try:
        target = resolve_target(
            aws_endpoint=args.aws_endpoint, stack=args.stack, region=args.region, profile=args.profile
        )
    except TargetError as error:
        raise CommandError(str(error)) from error
    print(f"dsync {args.command}: {target.description}", file=sys.stderr)
    return target


def workos_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workos-api-key",
        default=os.environ.get("WORKOS_API_KEY"),
        help="WorkOS API key (default: $WORKOS_API_KEY, else the stack's secret)",
    )
    parser.add_argument(
        "--workos-base-url",
        type=http_url,
        default=os.environ.get("WORKOS_BASE_URL") or None,
        help="WorkOS API base URL (default: $WORKOS_BASE_URL or https://api.workos.com)",
    )
