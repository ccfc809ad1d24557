"""Source 1, webhooks: verify WorkOS's signature over the exact bytes and queue the event (API Gateway → SQS FIFO).

`signature` checks `WorkOS-Signature`; `webhook` classifies a request and builds the queue message every source
uses (`queued_event`); `settings` is its stdlib settings (pydantic-settings doubles the cold start). May import the
model only.
"""
