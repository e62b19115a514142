"""English message catalogue of the bot."""

MESSAGES: dict[str, str] = {
    "help.user": (
        "I help you register in the Photomatrix ERP. Commands:\n"
        "• `register` — register (a dialog in direct messages)\n"
        "• `status` — the status of your registration\n"
        "• `cancel` — stop the registration\n"
        "• `help` — this help"
    ),
    "help.admin": (
        "Admin commands:\n"
        "• `status @user` — an employee's status\n"
        "• `approve <id>` / `reject <id> [reason]` — decide on a request\n"
        "• `block @user` / `unblock @user`\n"
        "• `positions` — the positions\n"
        "• `position <code> access on|off` — ERP access for a position\n"
        "• `reissue @user` — a new activation code (sent to that user by direct message)\n"
        "• `audit [n]` — the last n commands\n"
        "• `report [days]` — registrations over the last days (7 by default) and who is waiting"
    ),
    "unknown": "I did not understand that. Send `help` to see the commands.",
    "internal_error": "Something went wrong. Please try again a bit later.",
    "too_long": "The message is too long (over {limit} characters).",
    "rate_limited": "Too many commands. Wait a minute and try again.",
    "not_admin": "Only administrators may use this command. The attempt has been recorded.",
    "erp_unavailable": "The ERP is unavailable right now. Please try again later.",
    "erp_error": "The ERP refused the request ({code}). Please contact an administrator.",
    "usage.register": "Usage: `register`",
    "usage.status": "Usage: `status` or `status @user`",
    "usage.approve": "Usage: `approve <id>`",
    "usage.reject": "Usage: `reject <id> [reason]`",
    "usage.block": "Usage: `block @user`",
    "usage.unblock": "Usage: `unblock @user`",
    "usage.positions": "Usage: `positions`",
    "usage.position": "Usage: `position <code> access on|off`",
    "usage.reissue": "Usage: `reissue @user`",
    "usage.audit": "Usage: `audit [n]`, n from 1 to 100",
    "usage.report": "Usage: `report [days]`, days from 1 to 366 (7 by default)",
    "usage.help": "Usage: `help`",
    "usage.cancel": "Usage: `cancel`",
    "register.dm_sent": "@{username}, let's continue the registration in direct messages.",
    "register.no_positions": "The ERP has no positions available. Please contact an administrator.",
    "register.intro": "Let's register you. Send `cancel` at any time to stop.",
    "dialog.ask_name": "Enter your full name, e.g. Ivan Ivanov.",
    "dialog.ask_position": "Choose your position — send its number:\n{positions}",
    "dialog.ask_email": "Enter your work email address.",
    "dialog.ask_phone": "Enter your phone as +79991234567, or `-` to skip.",
    "dialog.summary": (
        "Please check:\n• Full name: {full_name}\n• Position: {position}\n• Email: {email}\n"
        "• Phone: {phone}\nIs this right? Answer `yes` or `no`."
    ),
    "dialog.invalid_name": "A name is 2 to 150 characters: letters, spaces, hyphens and apostrophes.",
    "dialog.invalid_position": "No such position: send a number from 1 to {max}.",
    "dialog.invalid_email": "That does not look like an email address.",
    "dialog.invalid_phone": "Please give the phone in international format, e.g. +79991234567.",
    "dialog.invalid_confirm": "Answer `yes` to send the request or `no` to cancel.",
    "dialog.cancelled": "Registration cancelled. To start again: `register`.",
    "dialog.nothing_to_cancel": "There is nothing to cancel.",
    "dialog.expired": "The registration timed out ({minutes} min). To start again: `register`.",
    "dialog.erp_unavailable": (
        "The ERP is unavailable, the request was not sent. Your answers are kept: send `yes` a bit later "
        "to send it again, or `cancel`."
    ),
    "dialog.field_rejected": "The ERP did not accept a field ({field}): {detail}",
    "result.created": "Done! Your ERP account has been created.",
    "result.pending": "Request #{id} is sent to the administrators for approval; I will tell you the result.",
    "result.no_access": (
        "Staff record #{id} has been created. Your position grants no ERP access, so no ERP account is made."
    ),
    "result.already": "You are registered already.",
    "code.issued": (
        "Your ERP login: `{login}`\nActivation code: `{code}`\nThe code is valid until {expires}. "
        "Activate your account{url}: enter the login, the code and a new password (at least 10 "
        "characters, letters and digits). Never share the code."
    ),
    "code.url": " at {url}",
    "code.reissued_admin": "A new activation code has been sent to @{username} by direct message.",
    "admins.request": (
        "Registration request #{id}: {full_name} (@{username}), position “{position}”.\n"
        "Approve: `approve {id}`\nReject: `reject {id} [reason]`"
    ),
    "approval.approved_admin": "Request #{id} (@{username}) approved.",
    "approval.rejected_admin": "Request #{id} (@{username}) rejected.",
    "approval.approved_user": "Your request #{id} has been approved.",
    "approval.rejected_user": "Your request #{id} has been rejected.{reason}",
    "approval.reason": " Reason: {reason}",
    "block.done": "@{username} is blocked.",
    "unblock.done": "@{username} is unblocked.",
    "staff.not_found": "@{username} is not registered in the ERP.",
    "staff.id_not_found": "Request #{id} was not found.",
    "staff.invalid_state": "Not possible in the current status of record #{id}.",
    "status.none": "You are not registered yet. Send `register`.",
    "status.header": "Employee #{id}: {full_name}, position “{position}”.",
    "status.pending_approval": "Status: waiting for an administrator's approval.",
    "status.awaiting_activation": "Status: account `{login}` created, waiting for activation.",
    "status.active": "Status: account `{login}` is active.",
    "status.rejected": "Status: the request was rejected.{reason}",
    "status.blocked": "Status: the account is blocked.",
    "status.no_erp_access": "Status: record created; the position grants no ERP access.",
    "status.unknown": "Status: {status}.",
    "positions.header": "Positions (code — name — ERP access — approval):",
    "positions.line": "• `{code}` — {name} — {access} — {approval}",
    "positions.empty": "There are no active positions.",
    "position.updated": "Position `{code}`: ERP access {access}.",
    "position.not_found": "Position `{code}` was not found.",
    "word.yes": "yes",
    "word.no": "no",
    "word.on": "on",
    "word.off": "off",
    "audit.header": "Recent commands:",
    "audit.line": "#{id} {at} @{username} {command} → {outcome}",
    "audit.empty": "The audit trail is empty.",
    "report.header": "*Registrations report* {since} — {until} ({days} d)",
    "report.totals": "Registered: {total} · activated: {activated}",
    "report.by_status": "By status: {items}",
    "report.by_position": "By position: {items}",
    "report.position_item": "{name} (`{code}`) {total}",
    "report.status.pending_approval": "pending approval",
    "report.status.awaiting_activation": "awaiting activation",
    "report.status.active": "active",
    "report.status.rejected": "rejected",
    "report.status.blocked": "blocked",
    "report.status.no_erp_access": "no ERP access",
    "report.pending_header": "*Waiting for approval ({count}):*",
    "report.pending_line": "• #{id} {full_name} (@{username}), `{position}`, waiting {age}",
    "report.awaiting_header": "*Waiting for activation ({count}):*",
    "report.awaiting_line": "• #{id} {full_name} (@{username}), `{position}`, code valid until {expires}",
    "report.awaiting_line_no_code": (
        "• #{id} {full_name} (@{username}), `{position}`, no valid code: `reissue @{username}`"
    ),
    "report.none": "— none",
    "report.more": "… and {count} more",
    "age.days_hours": "{days} d {hours} h",
    "age.hours_minutes": "{hours} h {minutes} min",
    "reminder.pending_digest": (
        "*Reminder:* {count} registration request(s) have been waiting for approval for over {hours} h:\n"
        "{lines}\nApprove: `approve <id>`, reject: `reject <id> [reason]`."
    ),
    "reminder.activation_expiry": (
        "Reminder: your ERP account is not activated yet, and your activation code is valid only until "
        "{expires}. Activate the account before then{url}. If the code is lost or has expired, ask an "
        "administrator for a new one (the command is `reissue @{username}`)."
    ),
    "task.title": "Approve the ERP registration of {full_name} ({position})",
    "task.description": (
        "A new employee registered through the Rocket.Chat onboarding bot and waits for approval.\n\n"
        "Staff id: {id}\nFull name: {full_name}\nPosition: {position} ({position_code})\n"
        "Rocket.Chat user: @{username}\nRegistered: {created}\n\n"
        "Decide in Rocket.Chat (a direct message to the bot, or the admins channel):\n"
        "approve {id}\nreject {id} [reason]\n"
        "or in the ERP. The bot comments the decision here and closes this task."
    ),
    "task.closed.approved": "Approved by @{admin} through the bot. The employee has been told.",
    "task.closed.rejected": "Rejected by @{admin} through the bot.{reason} The employee has been told.",
    "task.closed.erp": "Decided in the ERP: the registration is now {status}. The employee has been told.",
    "task.reason": " Reason: {reason}.",
    "alerts.header.firing": "🔥 *Monitoring alert* — firing: {firing}, resolved: {resolved}",
    "alerts.header.resolved": "✅ *Monitoring: resolved* — {resolved} alert(s)",
    "alerts.line.firing": "• FIRING [{severity}] *{name}*: {summary}",
    "alerts.line.resolved": "• resolved [{severity}] *{name}*: {summary}",
    "alerts.more": "… and {count} more",
}
