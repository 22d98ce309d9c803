// bcoin ships no type declarations; the host wraps it in chain/regtest-node.ts and exposes typed methods.
declare module "bcoin" {
  // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript; chain/ wraps it with types
  const bcoin: any;
  export default bcoin;
}
