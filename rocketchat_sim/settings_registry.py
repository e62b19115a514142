"""The workspace settings the simulator knows: id → (default, type, public).

Ids and defaults from Rocket.Chat's settings sources (facts.md §3.5). Types decide how an env
override is converted, as Rocket.Chat's convertValue does: booleans from true/false, ints parsed,
everything else kept as a string.
"""

from __future__ import annotations

from typing import Any

SETTINGS: dict[str, tuple[Any, str, bool]] = {
    "Site_Url": ("", "string", True),
    "Site_Name": ("Rocket.Chat", "string", True),
    "Language": ("", "language", True),
    "Show_Setup_Wizard": ("pending", "select", True),
    "Force_SSL": (False, "boolean", True),
    "Allow_Invalid_SelfSigned_Certs": (False, "boolean", False),
    "Enable_CSP": (True, "boolean", False),
    "UTF8_User_Names_Validation": ("[0-9a-zA-Z-_.]+", "string", True),
    "UTF8_Channel_Names_Validation": ("[0-9a-zA-Z-_.]+", "string", True),
    "Update_EnableChecker": (True, "boolean", False),
    "SSRF_Allowlist": ("", "string", False),
    "API_Enable_CORS": (False, "boolean", False),
    "API_CORS_Origin": ("*", "string", False),
    "API_Default_Count": (50, "int", False),
    "API_Upper_Count_Limit": (100, "int", False),
    "Organization_Type": ("", "select", False),
    "Organization_Name": ("", "string", False),
    "Industry": ("", "select", False),
    "Size": ("", "select", False),
    "Country": ("", "select", False),
    "Website": ("", "string", False),
    "Server_Type": ("", "select", False),
    "Allow_Marketing_Emails": (True, "boolean", False),
    "Register_Server": (False, "boolean", False),
    "Organization_Email": ("", "string", False),
    "Cloud_Service_Agree_PrivacyTerms": (False, "boolean", False),
    "SMTP_Protocol": ("smtp", "select", False),
    "SMTP_Host": ("", "string", False),
    "SMTP_Port": ("", "string", False),
    "SMTP_IgnoreTLS": (True, "boolean", False),
    "SMTP_Pool": (True, "boolean", False),
    "SMTP_Username": ("", "string", False),
    "SMTP_Password": ("", "password", False),
    "From_Email": ("", "string", False),
    "Accounts_RegistrationForm": ("Public", "select", True),
    "Accounts_RegistrationForm_SecretURL": ("", "string", False),
    "Accounts_ManuallyApproveNewUsers": (False, "boolean", True),
    "Accounts_EmailVerification": (False, "boolean", True),
    "Accounts_AllowedDomainsList": ("", "string", True),
    "Accounts_UseDNSDomainCheck": (False, "boolean", False),
    "Accounts_RequireNameForSignUp": (True, "boolean", True),
    "Accounts_AllowUserAvatarChange": (True, "boolean", True),
    "Accounts_AllowDeleteOwnAccount": (False, "boolean", True),
    "Accounts_LoginExpiration": (90, "int", True),
    "Accounts_TwoFactorAuthentication_Enabled": (True, "boolean", True),
    "Accounts_TwoFactorAuthentication_By_TOTP_Enabled": (True, "boolean", True),
    "Accounts_TwoFactorAuthentication_By_Email_Enabled": (True, "boolean", True),
    "Accounts_TwoFactorAuthentication_By_Email_Auto_Opt_In": (True, "boolean", False),
    "Accounts_TwoFactorAuthentication_By_Email_Code_Expiration": (3600, "int", False),
    "Accounts_TwoFactorAuthentication_RememberFor": (1800, "int", False),
    "Accounts_TwoFactorAuthentication_Enforce_Password_Fallback": (True, "boolean", True),
    "Accounts_TwoFactorAuthentication_MaxDelta": (1, "int", False),
    "API_Enable_Rate_Limiter": (True, "boolean", False),
    "API_Enable_Rate_Limiter_Dev": (True, "boolean", False),
    "API_Enable_Rate_Limiter_Limit_Calls_Default": (10, "int", False),
    "API_Enable_Rate_Limiter_Limit_Time_Default": (60000, "int", False),
    "Rate_Limiter_Limit_RegisterUser": (1, "int", False),
    "DDP_Rate_Limit_User_By_Method_Enabled": (True, "boolean", False),
    "DDP_Rate_Limit_User_By_Method_Requests_Allowed": (20, "int", False),
    "DDP_Rate_Limit_User_By_Method_Interval_Time": (10000, "int", False),
    "Prometheus_Enabled": (False, "boolean", False),
    "Prometheus_Port": (9458, "int", False),
    "FileUpload_Storage_Type": ("GridFS", "select", False),
    "FileUpload_FileSystemPath": ("", "string", False),
    "FileUpload_MaxFileSize": (104857600, "int", True),
    "Message_MaxAllowedSize": (5000, "int", True),
    "Message_AllowEditing": (True, "boolean", True),
    "Message_AllowDeleting": (True, "boolean", True),
    "Threads_enabled": (True, "boolean", True),
    "Message_Read_Receipt_Enabled": (False, "boolean", True),
    "UI_Use_Real_Name": (False, "boolean", True),
    "Outgoing_Integration_Timeout": (0, "int", False),
    "Livechat_enabled": (False, "boolean", True),
    "Message_ShowDeletedStatus": (False, "boolean", True),
    "Message_AllowPinning": (True, "boolean", True),
    "Message_AllowStarring": (True, "boolean", True),
    "Message_KeepHistory": (False, "boolean", True),
    "API_Enable_Direct_Message_History_EndPoint": (False, "boolean", False),
    "API_Allow_Infinite_Count": (True, "boolean", False),
    "Accounts_AllowAnonymousRead": (False, "boolean", True),
}


class SettingValueError(ValueError):
    pass


def convert(setting_id: str, raw: str) -> Any:
    """Convert an environment string to the setting's type (Rocket.Chat's convertValue)."""
    kind = SETTINGS[setting_id][1] if setting_id in SETTINGS else "string"
    if kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise SettingValueError(f"Error converting value for setting {setting_id}: expected type boolean")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise SettingValueError(
                f"Error converting value for setting {setting_id}: expected type int"
            ) from None
    return raw


def check_type(setting_id: str, value: Any) -> bool:
    """Whether a value posted through the REST API fits the setting's type."""
    kind = SETTINGS[setting_id][1] if setting_id in SETTINGS else "string"
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)
