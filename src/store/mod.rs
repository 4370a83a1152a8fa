//! The store: atomic versioned files, links, permissions and POSIX ACLs. (Filled by the Store issue.)
