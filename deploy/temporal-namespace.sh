#!/bin/sh
# One-shot in temporalio/admin-tools, once the server answers: register the namespace the workers use
# (temporalio/server, unlike the deprecated auto-setup image, creates none) and Foreman's search attributes
# (core/search_attributes.py; workers run without them, with one warning, where they are missing). Safe to run again.
set -eu
NAMESPACE="${DEFAULT_NAMESPACE:-default}"
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"

attempt=1
until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
    [ "$attempt" -ge 60 ] && { echo "Temporal at $ADDRESS did not become healthy" >&2; exit 1; }
    attempt=$((attempt + 1))
    sleep 2
done
if temporal operator namespace describe --namespace "$NAMESPACE" --address "$ADDRESS" >/dev/null 2>&1; then
    echo "namespace $NAMESPACE exists"
else
    temporal operator namespace create --namespace "$NAMESPACE" --address "$ADDRESS"
    echo "namespace $NAMESPACE registered"
fi

# Only those missing: `create` of an existing attribute is an error on some servers. The same list as core/search_attributes.py.
existing=$(temporal operator search-attribute list --namespace "$NAMESPACE" --address "$ADDRESS")
for pair in ForemanStatus=Keyword ForemanPlaybook=Keyword ForemanPendingApprovals=Int ForemanModelCalls=Int \
            ForemanCostUsd=Double ForemanGoal=Text; do
    name=${pair%%=*}
    if printf '%s\n' "$existing" | grep -qw "$name"; then
        echo "search attribute $name exists"
    else
        temporal operator search-attribute create --namespace "$NAMESPACE" --address "$ADDRESS" --name "$name" --type "${pair#*=}"
        echo "search attribute $name registered"
    fi
done
