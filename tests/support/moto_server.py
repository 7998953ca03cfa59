"""moto's server, answering one request at a time, with IAM enforced as AWS enforces it.

One request at a time: moto's own server is threaded, and its DynamoDB checks a condition and
applies the write in separate steps, so two concurrent conditional writes can both succeed.
DynamoDB makes each conditional write atomic, and hubsync's guarantees (leases, single-use keys,
rate slots) rely on that: served one at a time, moto behaves the same way.

IAM enforced: every request must be signed by a principal of moto's IAM, and is refused with
AccessDenied unless that principal's policy allows the action. Before serving, this script creates:

- `HubsyncTestAdmin`, allowed everything: the tests' own setup (tables, queues, secrets);
- one principal per function of template.yaml (`PushWorkerFunction`, ...), whose policy is the
  function's `Policies` rendered from the template, so a function that calls what its template role
  does not allow fails here as it would in AWS.

Their access keys are fixed (see `access_key`), so the tests can sign as any of them.

What moto checks: the action of every request (DynamoDB, SQS, Secrets Manager, KMS...), and the
resource of SQS requests only (for the other services moto authorises against "*"). Statements on
DynamoDB, Secrets Manager and KMS are therefore rendered with "*" here, and their resources are
checked on the template instead (`check_scoped`): each must be one of the template's own resources,
of the type its actions' service acts on. SQS queues are rendered as ARN patterns on the names the
tests give them (`hubsync-<id>-push`, `hubsync-<id>-push-dlq`, ...). Conditions are not rendered
(moto does not evaluate them).

Usage: python3 moto_server.py HOST PORT [TEMPLATE]   (IAM is enforced when TEMPLATE is given)
"""

import json
import sys

import yaml
from moto import settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

ADMIN = "HubsyncTestAdmin"

# AWS authorises each batch action by its single-message action (SQS API reference: "the
# permissions for SendMessageBatch are the same as for SendMessage", and so on); moto checks the
# batch action's own name, so a statement allowing one allows the other here.
BATCH_ACTIONS = {
    "sqs:SendMessage": "sqs:SendMessageBatch",
    "sqs:DeleteMessage": "sqs:DeleteMessageBatch",
    "sqs:ChangeMessageVisibility": "sqs:ChangeMessageVisibilityBatch",
}


def access_key(principal):
    """The fixed access key id and secret of a principal; tests/support/lib.rs derives the same."""
    return f"HUBSYNC{principal.upper()}", f"{principal}-secret"


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short forms (`!Ref X`, `!GetAtt X.Arn`, `!Sub ...`) as their long forms."""


def _intrinsic(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


TemplateLoader.add_multi_constructor("!", _intrinsic)


def queue_pattern(logical_id):
    """`PushQueue` -> the ARN of any test's `hubsync-<id>-push`; `PushDeadLetterQueue` -> `...-push-dlq`."""
    role = logical_id.removesuffix("Queue")
    dead_letter = role.endswith("DeadLetter")
    role = role.removesuffix("DeadLetter").lower() + ("-dlq" if dead_letter else "")
    return f"arn:aws:sqs:*:*:hubsync-*-{role}"


def render_resource(resource, resources):
    """A statement's resource as moto can check it (see the module's notes)."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        if resources[logical_id]["Type"] == "AWS::SQS::Queue" and attribute == "Arn":
            return queue_pattern(logical_id)
    return "*"


def render_statement(statement, resources):
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    actions = actions + [BATCH_ACTIONS[a] for a in actions if a in BATCH_ACTIONS]
    listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    rendered = sorted({render_resource(r, resources) for r in listed})
    return {"Effect": statement["Effect"], "Action": actions, "Resource": rendered}


# What SAM adds to a function's role for each of its SQS events (its SQSPollerPolicy template):
# Lambda's poller receives, deletes and backs off that queue's messages as the function's role.
SQS_POLLER_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
]


# The resource type a statement's resources must be, by the service of its actions.
SERVICE_RESOURCE_TYPES = {
    "dynamodb": "AWS::DynamoDB::Table",
    "sqs": "AWS::SQS::Queue",
    "kms": "AWS::KMS::Key",
    "secretsmanager": "AWS::SecretsManager::Secret",
}


def referenced_resource(resource):
    """The logical id a statement's resource names: `!Ref X`, `!GetAtt X.Arn`, `!Sub "${X.Arn}/..."`."""
    if isinstance(resource, dict) and "Ref" in resource:
        return resource["Ref"]
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        return resource["Fn::GetAtt"][0]
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        text = resource["Fn::Sub"]
        if text.startswith("${") and "}" in text:
            return text[2 : text.index("}")].split(".")[0]
    return None


def check_scoped(logical_id, statement, resources):
    """A statement of the template names its own resources, of its actions' service: "*" or an ARN
    typed out would grant the action on resources the stack does not own, and moto could not tell
    (it authorises against "*" for every service but SQS)."""
    listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    for action in actions:
        expected = SERVICE_RESOURCE_TYPES.get(action.split(":")[0])
        for resource in listed:
            named = referenced_resource(resource)
            if named is None or named not in resources:
                raise SystemExit(f"{logical_id}: {action} on {resource!r}, not on a resource of this template")
            if expected and resources[named]["Type"] != expected:
                raise SystemExit(f"{logical_id}: {action} on {named}, a {resources[named]['Type']}, not a {expected}")


def function_policies(template_path):
    """Each function's policy document, rendered from its `Policies` in the template."""
    with open(template_path) as f:
        template = yaml.load(f, Loader=TemplateLoader)
    resources = template["Resources"]
    policies = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        statements = []
        for policy in resource["Properties"].get("Policies", []):
            if isinstance(policy, dict) and "Ref" in policy:
                document = resources[policy["Ref"]]["Properties"]["PolicyDocument"]
            elif isinstance(policy, dict) and "Statement" in policy:
                document = policy
            else:
                raise SystemExit(f"{logical_id}: a policy this script cannot render: {policy!r}")
            for statement in document["Statement"]:
                check_scoped(logical_id, statement, resources)
                statements.append(render_statement(statement, resources))
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                poller = {"Effect": "Allow", "Action": SQS_POLLER_ACTIONS, "Resource": event["Properties"]["Queue"]}
                statements.append(render_statement(poller, resources))
        policies[logical_id] = {"Version": "2012-10-17", "Statement": statements}
    return policies


def create_principal(iam, name, policy):
    iam.create_user(region_name="us-east-1", user_name=name)
    iam.put_user_policy(name, "policy", json.dumps(policy))
    key = iam.create_access_key(name)
    del iam.access_keys[key.access_key_id]
    key.access_key_id, key.secret_access_key = access_key(name)
    iam.access_keys[key.access_key_id] = key


def enforce_iam(template_path):
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["global"]
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    create_principal(iam, ADMIN, everything)
    for name, policy in function_policies(template_path).items():
        create_principal(iam, name, policy)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    if len(sys.argv) > 3:
        enforce_iam(sys.argv[3])
    run_simple(host, port, DomainDispatcherApplication(create_backend_app), threaded=False)
