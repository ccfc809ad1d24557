"""`make rehearse`: the real CDK app deployed into MiniStack (a local AWS emulator), driven end to end, destroyed.

No AWS account and no Docker: MiniStack (PyPI `ministack`, installed by the Makefile in its own venv,
`.rehearse-venv`) runs CloudFormation, API Gateway, Lambda (each function in a worker process on MiniStack's own
interpreter), SQS, DynamoDB with streams, EventBridge and Secrets Manager on one loopback port.

- `rehearsal.ministack`: MiniStack in its own process group, on a free loopback port, with a scratch TMPDIR; its
  environment reaches every Lambda worker, so it points the functions at the fake WorkOS (`dsync.fake_workos`);
- `rehearsal.cdk`: `cdk bootstrap`, `cdk deploy` and `cdk destroy` of app.py against it, with dummy credentials and
  the two rehearsal-only context switches (`infra.config`: no change archive, host-interpreter bundles);
- `rehearsal.template`: the deployed resources against the synthesized template, and what is left after destroy;
- `rehearsal.drive`: signed webhooks through the deployed API until the store equals the fake WorkOS, lost webhooks
  for the Events API tail to recover, the change bus followed, a reconcile started as the schedule starts it;
- `rehearsal.run`: the phases in order, each timed, and the verdict (`rehearse: PASS|FAIL`, exit code 0|1).
"""
