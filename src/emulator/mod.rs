//! A local Azure for tests and the demo: Key Vault, IMDS and Arc emulator over real TLS.
//! (Filled by the Emulator issue.)
