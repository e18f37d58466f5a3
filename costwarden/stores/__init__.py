"""Budget stores: where running totals live (memory, SQLite, Redis), behind one interface."""
