// Attestation providers: `nitro` (the NSM device through a helper binary) and `simulator`.
export {
  DEFAULT_NSM_HELPER,
  decodeNsmAttestationResponse,
  encodeNsmAttestationRequest,
  helperTransport,
  NitroProvider,
  type NitroProviderOptions,
  NSM_REQUEST_MAX,
  NSM_RESPONSE_MAX,
  type NsmTransport,
} from "./nitro.ts";
export {
  AttestationError,
  type AttestationProvider,
  type AttestationRequest,
  checkRequest,
} from "./provider.ts";
export {
  type SimulatedPcrs,
  SimulatorProvider,
  type SimulatorProviderOptions,
  simulatorModuleId,
} from "./simulator.ts";
