"""The onboarding bot: registers employees in the ERP from a Rocket.Chat dialog, status, admin commands."""
