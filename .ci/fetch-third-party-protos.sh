#!/usr/bin/env bash
# Copies the third-party .proto files agentd builds against out of the npm packages that ship
# them into third_party/ (git-ignored). Run by `npm run generate`; nothing here is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=third_party
rm -rf "$out"
mkdir -p "$out/google/api" "$out/grpc/health/v1" "$out/grpc/reflection/v1" "$out/grpc/reflection/v1alpha"
cp node_modules/google-proto-files/google/api/annotations.proto node_modules/google-proto-files/google/api/http.proto "$out/google/api/"
cp node_modules/grpc-health-check/proto/health/v1/health.proto "$out/grpc/health/v1/"
cp node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto "$out/grpc/reflection/v1/"
cp node_modules/@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto "$out/grpc/reflection/v1alpha/"
