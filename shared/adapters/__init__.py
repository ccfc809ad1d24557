"""The adapters: one per AWS service (`dynamodb`, `sqs`, `eventbridge`, `secrets`), each taking an optional boto3
client, and the paced WorkOS client (`workos_api`, `workos_client`). They implement the stages' ports and sit above
the stages: a stage never imports an adapter (`make test`'s import contracts).
"""
