"""English message catalogue of the bot. Command words live in bot/core/handlers.py, not here."""

MESSAGES: dict[str, str] = {
    "help.user": "I help new employees register in the Photomatrix ERP. Commands:",
    "help.admin": "Admin commands (in a direct message, or in the admins channel without a mention):",
    "help.line": "• `{usage}` — {help}",
    "usage": "Usage: `{usage}` — {help}.",
    "cmd.register.args": "",
    "cmd.register.help": "register in the ERP (a short dialog in direct messages)",
    "cmd.status.args": "",
    "cmd.status.help": "the status of your registration (admins: `status @user` for anyone's)",
    "cmd.help.args": "",
    "cmd.help.help": "this help",
    "cmd.cancel.args": "",
    "cmd.cancel.help": "stop the registration dialog",
    "cmd.approve.args": "<id>",
    "cmd.approve.help": "approve a registration request (the id is in the request post)",
    "cmd.reject.args": "<id> [reason]",
    "cmd.reject.help": "reject a request; the employee gets the reason and whom to contact",
    "cmd.block.args": "@user",
    "cmd.block.help": "block an employee's ERP account (they are told)",
    "cmd.unblock.args": "@user",
    "cmd.unblock.help": "unblock it (they are told)",
    "cmd.reissue.args": "@user",
    "cmd.reissue.help": "a new activation code, sent to the employee only; the old one stops working",
    "cmd.positions.args": "",
    "cmd.positions.help": "the positions, with ERP access and approval",
    "cmd.position.args": "<code> access on|off",
    "cmd.position.help": "switch ERP access for a position",
    "cmd.audit.args": "[n]",
    "cmd.audit.help": "the last n commands (1 to 100, 10 by default)",
    "cmd.report.args": "[days]",
    "cmd.report.help": "registrations over the last days (1 to 366, 7 by default) and who is waiting",
    "greeting": (
        "Hello! I am the Photomatrix onboarding bot: I register new employees in the ERP. "
        "To start, send `register`. All commands: `help`."
    ),
    "unknown_dm": (
        "Sorry, I did not understand that. To register in the ERP, send `register`; "
        "to see what I can do, send `help`."
    ),
    "unknown": "Sorry, I did not understand that. Send `help` to see the commands.",
    "internal_error": "Something went wrong on my side. Please try again in a minute.",
    "too_long": "The message is too long (over {limit} characters). Please send a shorter one.",
    "rate_limited": "You are sending commands too fast. Please wait {seconds} s and try again.",
    "not_admin": "Only administrators may use this command.",
    "erp_unavailable": "The ERP is not answering right now. Please try again in a few minutes.",
    "erp_error": (
        "The ERP could not process this request. Please try again later or contact an administrator."
    ),
    "register.dm_sent": "@{username}, let's continue the registration in direct messages.",
    "register.no_positions": "The ERP offers no positions right now. Please contact an administrator.",
    "register.intro": (
        "Let's register you in the ERP: four short questions. Send `back` to return to the previous "
        "question, `cancel` to stop."
    ),
    "dialog.help": (
        "You are in the middle of the registration: answer the last question. "
        "`back` returns to the previous question, `cancel` stops."
    ),
    "dialog.ask_name": "What is your full name? Surname first, then given name, e.g. Smith John.",
    "dialog.ask_position": "Choose your position — send its number:\n{positions}",
    "dialog.position_chosen": "Position: {position}.",
    "dialog.position_approval": (
        "An administrator approves this position first; I will tell you the decision."
    ),
    "dialog.position_no_access": (
        "This position works without an ERP account: the email address is only for contacting you."
    ),
    "dialog.ask_email": "Your work email address?",
    "dialog.ask_email_contact": "An email address where we can reach you?",
    "dialog.ask_phone": "Your mobile phone, e.g. +44 20 7946 0018 or +7 912 345-67-89? Send `-` to skip.",
    "dialog.no_phone": "not given",
    "dialog.summary": (
        "Please check:\n1. Surname: {surname}\n   Given name: {given}\n2. Position: {position}\n"
        "3. Email: {email}\n4. Phone: {phone}\n"
        "All correct? Send `yes` to send the request. To change something, send its number or name "
        "(e.g. `email`)."
    ),
    "dialog.ask_what_to_change": (
        "What should I change? Send 1 (name), 2 (position), 3 (email) or 4 (phone). "
        "To drop the registration, send `cancel`."
    ),
    "dialog.invalid_confirm": "Send `yes` to send the request, or 1–4 to change a line.",
    "dialog.back_at_start": "This is the first question.",
    "name.reason.letters": (
        "A name is letters (Latin or Cyrillic) separated by single spaces, hyphens or apostrophes, "
        "2 to 150 characters."
    ),
    "name.reason.two_words": "Please give both your surname and your given name, surname first.",
    "name.reason.too_many": "That is more than five words: surname, given name(s) and patronymic, please.",
    "name.reason.mixed": "Please write the whole name in one alphabet, Latin or Cyrillic, not mixed.",
    "name.reason.order": "The surname goes first: did you mean {suggestion}?",
    "dialog.invalid_position": "There is no such position: send a number from 1 to {max}.",
    "email.reason.format": "That is not an email address: it should look like name@company.com.",
    "email.reason.reserved": "{domain} is a local or reserved domain that cannot receive mail.",
    "email.reason.typo": "That domain looks mistyped: did you mean {suggestion}?",
    "dialog.email_taken": (
        "This address is already used by another registration. Please enter a different one; "
        "if it really is yours, contact an administrator."
    ),
    "dialog.invalid_phone": (
        "That phone number looks incomplete: use the international format with the country code, "
        "e.g. +7 912 345-67-89 (a Russian number has 11 digits), or send `-` to skip."
    ),
    "dialog.cancelled": "Registration cancelled, nothing was sent. To start again: `register`.",
    "dialog.nothing_to_cancel": "There is nothing to cancel: no registration is in progress.",
    "dialog.expired": (
        "The registration timed out ({minutes} min without an answer). To start again: `register`."
    ),
    "dialog.erp_unavailable": (
        "The ERP is not answering, so the request was not sent. Your answers are kept: send `yes` in a few "
        "minutes to send it again, or `cancel`."
    ),
    "dialog.field_rejected": "The ERP did not accept the {field}. Please enter it again.",
    "field.name": "name",
    "field.position": "position",
    "field.email": "email address",
    "field.phone": "phone number",
    "position.mark.approval": "approved by an administrator first",
    "position.mark.no_access": "no ERP account",
    "result.created": "Done! Your ERP account has been created.",
    "result.pending": (
        "Your request has been sent to the administrators for approval. I will write to you here as soon "
        "as they decide."
    ),
    "result.no_access": (
        "Your registration is recorded. Your position works without an ERP account, so there is nothing "
        "more to do."
    ),
    "code.issued": (
        "Your ERP login: `{login}`\nActivation code: `{code}` — valid until {expires}.\n"
        "Activate your account{url}: enter the login, the code and a new password (at least 10 characters, "
        "with letters and digits, not containing the login). Never share the code with anyone."
    ),
    "code.url": " on the page {url}",
    "code.reissued_user": (
        "An administrator has issued you a new activation code. The previous code no longer works."
    ),
    "code.reissued_admin": "A new activation code has been sent to @{username} by direct message.",
    "admins.request": (
        "Registration request #{id}: {full_name} (@{username}), position “{position}”.\n"
        "Approve: `approve {id}`\nReject: `reject {id} [reason]`"
    ),
    "admins.decided.approved": "✅ Approved by @{admin}, {at}.",
    "admins.decided.rejected": "⛔ Rejected by @{admin}, {at}.",
    "admins.decided.erp": "☑️ Decided in the ERP ({status}), seen {at}.",
    "approval.approved_admin": "Request #{id} (@{username}) approved; the employee has their code.",
    "approval.rejected_admin": "Request #{id} (@{username}) rejected; the employee has been told.",
    "approval.busy": (
        "Request #{id} is being handled right now (a decision came from the ERP). "
        "Check its status in a minute."
    ),
    "approval.approved_user": "Your registration has been approved.",
    "approval.rejected_user": (
        "Your registration request has been rejected.{reason}\nWhat next: if this is a mistake or your "
        "details were wrong, write to {contact}. They can correct your record or remove it so that you "
        "can register again."
    ),
    "approval.reason": " Reason: {reason}.",
    "contact.admin": "@{admin}, who decided",
    "contact.hr": "the HR department",
    "block.done": "@{username} is blocked; they have been told.",
    "unblock.done": "@{username} is unblocked; they have been told.",
    "block.user": (
        "Your ERP account has been blocked by an administrator. If you do not know why, write to @{admin}."
    ),
    "unblock.user": "Your ERP account has been unblocked: you can sign in again.",
    "staff.not_found": "@{username} is not registered in the ERP.",
    "staff.id_not_found": "There is no request #{id}.",
    "staff.invalid_state": "`{action}` does not apply: record #{id} (@{username}) is {status}. {hint}",
    "state.pending_approval": "waiting for approval",
    "state.awaiting_activation": "waiting for activation",
    "state.active": "active",
    "state.rejected": "rejected",
    "state.blocked": "blocked",
    "state.no_erp_access": "without an ERP account",
    "state.deleted": "deleted",
    "state.hint.pending_approval": "Decide it with `{command} {id}` or reject it.",
    "state.hint.awaiting_activation": (
        "The employee has a code and must activate; if it is lost or expired: `{command} @{username}`."
    ),
    "state.hint.active": "The account is in use: nothing to decide.",
    "state.hint.rejected": "To let them register again, remove the record in the ERP.",
    "state.hint.blocked": "Unblock it first: `{command} @{username}`.",
    "state.hint.no_erp_access": "The position has no ERP access: switch it on for the position first.",
    "result.already": "You are registered already.",
    "status.none": "You are not registered yet. To start, send `register`.",
    "status.header": "Your registration: {full_name}, position “{position}”.",
    "status.header_admin": "Record #{id}: {full_name} (@{username}), position “{position}”.",
    "status.pending_approval": (
        "Status: waiting for an administrator's approval; I will tell you the decision."
    ),
    "status.awaiting_activation": (
        "Status: account `{login}` is waiting for activation with the code I sent you. Lost the code or it "
        "expired? Ask an administrator for a new one."
    ),
    "status.active": "Status: account `{login}` is active.",
    "status.rejected": "Status: the request was rejected.{reason} If this is a mistake, write to {contact}.",
    "status.blocked": "Status: the account is blocked. Write to {contact} if you do not know why.",
    "status.no_erp_access": "Status: registered; your position works without an ERP account.",
    "status.unknown": "Status: {status}.",
    "month.1": "January",
    "month.2": "February",
    "month.3": "March",
    "month.4": "April",
    "month.5": "May",
    "month.6": "June",
    "month.7": "July",
    "month.8": "August",
    "month.9": "September",
    "month.10": "October",
    "month.11": "November",
    "month.12": "December",
    "zone.MSK": "MSK",
    "zone.UTC": "UTC",
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
        "administrator for a new one."
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


# The ERP names positions and departments in Russian: their English names (unknown ones stay as they are).
NAMES: dict[str, str] = {
    "Инженер": "Engineer",
    "Бухгалтер": "Accountant",
    "Менеджер по продажам": "Sales manager",
    "Специалист по кадрам": "HR specialist",
    "Водитель": "Driver",
    "Уборщик": "Cleaner",
    "Оператор фотолаборатории": "Photo lab operator",
    "Директор": "Director",
    "Производство": "Production",
    "Бухгалтерия": "Accounting",
    "Отдел продаж": "Sales",
    "Отдел кадров": "Human resources",
    "Логистика": "Logistics",
    "Хозяйственный отдел": "Facilities",
}
