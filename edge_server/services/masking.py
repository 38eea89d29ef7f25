"""How personal data is shown: ID numbers are masked everywhere outside the staff pages."""


def mask_id_number(id_number: str) -> str:
    """Keep the first 3 and last 2 characters: 510902198909082879 -> 510*************79."""
    value = id_number.strip()
    if len(value) <= 5:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 5) + value[-2:]
