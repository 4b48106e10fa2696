# The conformance adapters, sourced by ci/conformance (the live matrix) and by
# vectors/capture/decoders/capture.sh (the stored decoder answers), so both run the same
# list. Each entry is NAME=FOLDER: NAME names the adapter in the matrix and its files
# (conformance/expectations/NAME.json, vectors/captured/decoders/NAME.json), FOLDER is
# conformance/adapters/FOLDER (install.sh, run.sh).
# shellcheck shell=bash
ADAPTERS=(
    "kcl=java-kcl"
    "go-kinesis-aggregation=go-kinesis-aggregation"
    "go-kinesis-producer=go-kinesis-producer"
    "aws_kinesis_agg=python-aws_kinesis_agg"
    "aiokpl=python-aiokpl"
    "node-aws-kinesis-agg=node-aws-kinesis-agg"
    "kinesis-aggregator-java=java-kinesis-aggregator"
    "kpl-java=java-kpl"
)
