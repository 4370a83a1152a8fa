//! Certificate material: a Key Vault secret value (PKCS#12 or PEM) → a verified, ordered
//! full chain with its private key. Pure: no I/O. (Filled by the Material issue.)
