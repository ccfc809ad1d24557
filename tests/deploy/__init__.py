"""`make deploy-check`, the template's IAM enforced per request (issue #19): the synthesized template created on
moto's CloudFormation, every real handler run as its own role, each AWS request checked against that role's policy
documents, the resource's policy and the KMS calls the service makes for the caller."""
