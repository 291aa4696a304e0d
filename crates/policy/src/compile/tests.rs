// Unit tests are added by the policy test work.
