"""The programme's yearly cycle: application forms, car-wash pilots, phases, evaluation and naming."""
