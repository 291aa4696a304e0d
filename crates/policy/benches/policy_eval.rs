//! Policy evaluation bench (filled in by the policy test work).

fn main() {}
