# The filter as an OCI image in the format Istio (WasmPlugin, and istio-agent for ECDS) and Envoy
# Gateway read: one layer holding the module as plugin.wasm. Build the module first:
#   ./scripts/setup.sh && docker build -t REGISTRY/ai-gateway:VERSION .
FROM scratch
COPY target/wasm32-wasip1/release/ai_gateway.wasm ./plugin.wasm
