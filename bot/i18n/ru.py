"""Русский каталог сообщений бота. Слова команд — в bot/core/handlers.py, не здесь."""

MESSAGES: dict[str, str] = {
    "help.user": "Я помогаю новым сотрудникам зарегистрироваться в ERP Photomatrix. Команды:",
    "help.admin": "Команды администратора (в личных сообщениях или в канале администраторов без упоминания):",
    "help.line": "• `{usage}` — {help}",
    "usage": "Использование: `{usage}` — {help}.",
    "cmd.register.args": "",
    "cmd.register.help": "зарегистрироваться в ERP (короткий диалог в личных сообщениях)",
    "cmd.status.args": "",
    "cmd.status.help": "статус вашей регистрации (администраторы: `статус @user` — чей угодно)",
    "cmd.help.args": "",
    "cmd.help.help": "эта справка",
    "cmd.cancel.args": "",
    "cmd.cancel.help": "прервать диалог регистрации",
    "cmd.approve.args": "<номер>",
    "cmd.approve.help": "одобрить заявку на регистрацию (номер — в сообщении о заявке)",
    "cmd.reject.args": "<номер> [причина]",
    "cmd.reject.help": "отклонить заявку; сотрудник получит причину и узнает, к кому обратиться",
    "cmd.block.args": "@user",
    "cmd.block.help": "заблокировать учётную запись ERP сотрудника (ему сообщат)",
    "cmd.unblock.args": "@user",
    "cmd.unblock.help": "разблокировать её (ему сообщат)",
    "cmd.reissue.args": "@user",
    "cmd.reissue.help": "новый код активации — только сотруднику; старый перестаёт действовать",
    "cmd.positions.args": "",
    "cmd.positions.help": "должности: доступ к ERP и одобрение",
    "cmd.position.args": "<код> доступ вкл|выкл",
    "cmd.position.help": "включить или выключить доступ к ERP для должности",
    "cmd.audit.args": "[n]",
    "cmd.audit.help": "последние n команд (от 1 до 100, по умолчанию 10)",
    "cmd.report.args": "[дней]",
    "cmd.report.help": "регистрации за последние дни (от 1 до 366, по умолчанию 7) и кто чего ждёт",
    "greeting": (
        "Здравствуйте! Я бот Photomatrix для новых сотрудников: регистрирую в ERP. "
        "Чтобы начать, напишите `регистрация`. Все команды: `помощь`."
    ),
    "unknown_dm": (
        "Извините, я не понял. Чтобы зарегистрироваться в ERP, напишите `регистрация`; что я умею — `помощь`."
    ),
    "unknown": "Извините, я не понял. Напишите `помощь`, чтобы увидеть команды.",
    "internal_error": "У меня что-то пошло не так. Попробуйте ещё раз через минуту.",
    "too_long": "Сообщение слишком длинное (больше {limit} символов). Пришлите покороче.",
    "rate_limited": "Слишком много команд подряд. Подождите {seconds} с и попробуйте снова.",
    "not_admin": "Эта команда доступна только администраторам.",
    "erp_unavailable": "ERP сейчас не отвечает. Попробуйте через несколько минут.",
    "erp_error": "ERP не смогла обработать запрос. Попробуйте позже или обратитесь к администратору.",
    "register.dm_sent": "@{username}, продолжим регистрацию в личных сообщениях.",
    "register.no_positions": "В ERP сейчас нет доступных должностей. Обратитесь к администратору.",
    "register.intro": (
        "Давайте зарегистрируем вас в ERP: четыре коротких вопроса. `назад` — вернуться к предыдущему "
        "вопросу, `отмена` — прервать."
    ),
    "dialog.help": (
        "Сейчас идёт регистрация: ответьте на последний вопрос. `назад` — к предыдущему вопросу, "
        "`отмена` — прервать."
    ),
    "dialog.ask_name": (
        "Ваши фамилия и имя (и отчество, если есть)? Сначала фамилия, например: Иванов Иван Иванович."
    ),
    "dialog.ask_position": "Выберите должность — отправьте её номер:\n{positions}",
    "dialog.position_chosen": "Должность: {position}.",
    "dialog.position_approval": "Эту должность сначала одобряет администратор; я сообщу о решении.",
    "dialog.position_no_access": (
        "Для этой должности учётная запись ERP не нужна: адрес почты нужен только для связи с вами."
    ),
    "dialog.ask_email": "Ваш рабочий адрес электронной почты?",
    "dialog.ask_email_contact": "Адрес электронной почты, по которому с вами можно связаться?",
    "dialog.ask_phone": "Ваш мобильный телефон, например +7 912 345-67-89? Отправьте `-`, чтобы пропустить.",
    "dialog.no_phone": "не указан",
    "dialog.summary": (
        "Проверьте данные:\n1. Фамилия: {surname}\n   Имя: {given}\n2. Должность: {position}\n"
        "3. Почта: {email}\n4. Телефон: {phone}\n"
        "Всё верно? Ответьте `да`, чтобы отправить заявку. Чтобы исправить строку, отправьте её номер "
        "или название (например, `почта`)."
    ),
    "dialog.ask_what_to_change": (
        "Что исправить? Отправьте 1 (ФИО), 2 (должность), 3 (почта) или 4 (телефон). "
        "Чтобы отказаться от регистрации, напишите `отмена`."
    ),
    "dialog.invalid_confirm": (
        "Ответьте `да`, чтобы отправить заявку, или номер строки (1–4), чтобы её исправить."
    ),
    "dialog.back_at_start": "Это первый вопрос.",
    "name.reason.letters": (
        "Имя — это буквы (кириллица или латиница), разделённые одним пробелом, дефисом или апострофом, "
        "от 2 до 150 символов."
    ),
    "name.reason.two_words": "Нужны и фамилия, и имя — сначала фамилия.",
    "name.reason.too_many": "Больше пяти слов: укажите фамилию, имя и отчество.",
    "name.reason.mixed": "Напишите имя целиком одним алфавитом — кириллицей или латиницей, не вперемешку.",
    "name.reason.order": "Сначала фамилия: может быть, {suggestion}?",
    "dialog.invalid_position": "Такой должности нет: отправьте номер от 1 до {max}.",
    "email.reason.format": "Это не адрес электронной почты: он выглядит как name@company.ru.",
    "email.reason.reserved": "{domain} — локальный или зарезервированный домен, почта на него не придёт.",
    "email.reason.typo": "Похоже на опечатку в домене: может быть, {suggestion}?",
    "dialog.email_taken": (
        "Этот адрес уже указан в другой регистрации. Введите другой адрес; если это действительно ваш "
        "адрес, обратитесь к администратору."
    ),
    "dialog.invalid_phone": (
        "Номер телефона выглядит неполным: укажите его в международном формате с кодом страны, например "
        "+7 912 345-67-89 (в российском номере 11 цифр), или отправьте `-`, чтобы пропустить."
    ),
    "dialog.cancelled": "Регистрация отменена, ничего не отправлено. Начать заново: `регистрация`.",
    "dialog.nothing_to_cancel": "Отменять нечего: регистрация не идёт.",
    "dialog.expired": (
        "Время на регистрацию истекло ({minutes} мин без ответа). Начать заново: `регистрация`."
    ),
    "dialog.erp_unavailable": (
        "ERP не отвечает, поэтому заявка не отправлена. Ваши ответы сохранены: напишите `да` через несколько "
        "минут, чтобы отправить её снова, или `отмена`."
    ),
    "dialog.field_rejected": "ERP не приняла {field}. Введите, пожалуйста, ещё раз.",
    "field.name": "имя",
    "field.position": "должность",
    "field.email": "адрес почты",
    "field.phone": "номер телефона",
    "position.mark.approval": "сначала одобряет администратор",
    "position.mark.no_access": "без учётной записи ERP",
    "result.created": "Готово! Учётная запись ERP создана.",
    "result.pending": (
        "Заявка отправлена администраторам на одобрение. Я напишу вам здесь, как только они примут решение."
    ),
    "result.no_access": (
        "Регистрация записана. Ваша должность работает без учётной записи ERP, больше ничего делать не нужно."
    ),
    "code.issued": (
        "Ваш логин в ERP: `{login}`\nКод активации: `{code}` — действует до {expires}.\n"
        "Активируйте учётную запись{url}: введите логин, код и новый пароль (не короче 10 символов, "
        "с буквами и цифрами, без логина). Никому не сообщайте код."
    ),
    "code.url": " на странице {url}",
    "code.reissued_user": "Администратор выпустил вам новый код активации. Прежний код больше не действует.",
    "code.reissued_admin": "Новый код активации отправлен @{username} в личные сообщения.",
    "admins.request": (
        "Заявка на регистрацию №{id}: {full_name} (@{username}), должность «{position}».\n"
        "Одобрить: `одобрить {id}`\nОтклонить: `отклонить {id} [причина]`"
    ),
    "admins.decided.approved": "✅ Одобрено: @{admin}, {at}.",
    "admins.decided.rejected": "⛔ Отклонено: @{admin}, {at}.",
    "admins.decided.erp": "☑️ Решено в ERP ({status}), замечено {at}.",
    "approval.approved_admin": "Заявка №{id} (@{username}) одобрена, код отправлен сотруднику.",
    "approval.rejected_admin": "Заявка №{id} (@{username}) отклонена, сотруднику сообщено.",
    "approval.busy": (
        "Заявка №{id} сейчас обрабатывается (решение пришло из ERP). Проверьте её статус через минуту."
    ),
    "approval.approved_user": "Ваша регистрация одобрена.",
    "approval.rejected_user": (
        "Ваша заявка на регистрацию отклонена.{reason}\nЧто дальше: если это ошибка или данные были "
        "неверны, напишите {contact}. Там могут исправить запись или удалить её, чтобы вы "
        "зарегистрировались заново."
    ),
    "approval.reason": " Причина: {reason}.",
    "contact.admin": "@{admin} (принял решение)",
    "contact.hr": "в отдел кадров",
    "block.done": "@{username} заблокирован(а), сотруднику сообщено.",
    "unblock.done": "@{username} разблокирован(а), сотруднику сообщено.",
    "block.user": (
        "Администратор заблокировал вашу учётную запись ERP. Если вы не знаете почему, напишите @{admin}."
    ),
    "unblock.user": "Ваша учётная запись ERP разблокирована: можно снова входить.",
    "staff.not_found": "Пользователь @{username} не зарегистрирован в ERP.",
    "staff.id_not_found": "Заявки №{id} нет.",
    "staff.invalid_state": "`{action}` не подходит: запись №{id} (@{username}) — {status}. {hint}",
    "state.pending_approval": "ждёт одобрения",
    "state.awaiting_activation": "ждёт активации",
    "state.active": "активна",
    "state.rejected": "отклонена",
    "state.blocked": "заблокирована",
    "state.no_erp_access": "без учётной записи ERP",
    "state.deleted": "удалена",
    "state.hint.pending_approval": "Решите её: `{command} {id}` или отклоните.",
    "state.hint.awaiting_activation": (
        "У сотрудника есть код, ему нужно активировать запись; если код потерян или истёк: "
        "`{command} @{username}`."
    ),
    "state.hint.active": "Учётная запись работает: решать нечего.",
    "state.hint.rejected": "Чтобы сотрудник мог зарегистрироваться заново, удалите запись в ERP.",
    "state.hint.blocked": "Сначала разблокируйте: `{command} @{username}`.",
    "state.hint.no_erp_access": "У должности нет доступа к ERP: сначала включите его для должности.",
    "result.already": "Вы уже зарегистрированы.",
    "status.none": "Вы ещё не зарегистрированы. Чтобы начать, напишите `регистрация`.",
    "status.header": "Ваша регистрация: {full_name}, должность «{position}».",
    "status.header_admin": "Запись №{id}: {full_name} (@{username}), должность «{position}».",
    "status.pending_approval": "Статус: ждёт одобрения администратором; я сообщу о решении.",
    "status.awaiting_activation": (
        "Статус: учётная запись `{login}` ждёт активации кодом, который я прислал. Код потерян или истёк? "
        "Попросите у администратора новый."
    ),
    "status.active": "Статус: учётная запись `{login}` активна.",
    "status.rejected": "Статус: заявка отклонена.{reason} Если это ошибка, напишите {contact}.",
    "status.blocked": "Статус: учётная запись заблокирована. Напишите {contact}, если не знаете почему.",
    "status.no_erp_access": "Статус: вы зарегистрированы; ваша должность работает без учётной записи ERP.",
    "status.unknown": "Статус: {status}.",
    "month.1": "января",
    "month.2": "февраля",
    "month.3": "марта",
    "month.4": "апреля",
    "month.5": "мая",
    "month.6": "июня",
    "month.7": "июля",
    "month.8": "августа",
    "month.9": "сентября",
    "month.10": "октября",
    "month.11": "ноября",
    "month.12": "декабря",
    "zone.MSK": "МСК",
    "zone.UTC": "UTC",
    "positions.header": "Должности (код — название — доступ к ERP — одобрение):",
    "positions.line": "• `{code}` — {name} — {access} — {approval}",
    "positions.empty": "Активных должностей нет.",
    "position.updated": "Должность `{code}`: доступ к ERP {access}.",
    "position.not_found": "Должность `{code}` не найдена.",
    "word.yes": "да",
    "word.no": "нет",
    "word.on": "включён",
    "word.off": "выключен",
    "audit.header": "Последние команды:",
    "audit.line": "#{id} {at} @{username} {command} → {outcome}",
    "audit.empty": "Журнал пуст.",
    "report.header": "*Отчёт о регистрациях* {since} — {until} ({days} дн.)",
    "report.totals": "Зарегистрировано: {total} · активировано: {activated}",
    "report.by_status": "По статусам: {items}",
    "report.by_position": "По должностям: {items}",
    "report.position_item": "{name} (`{code}`) {total}",
    "report.status.pending_approval": "ждут одобрения",
    "report.status.awaiting_activation": "ждут активации",
    "report.status.active": "активны",
    "report.status.rejected": "отклонены",
    "report.status.blocked": "заблокированы",
    "report.status.no_erp_access": "без доступа к ERP",
    "report.pending_header": "*Ждут одобрения ({count}):*",
    "report.pending_line": "• №{id} {full_name} (@{username}), `{position}`, ждёт {age}",
    "report.awaiting_header": "*Ждут активации ({count}):*",
    "report.awaiting_line": "• №{id} {full_name} (@{username}), `{position}`, код действует до {expires}",
    "report.awaiting_line_no_code": (
        "• №{id} {full_name} (@{username}), `{position}`, действующего кода нет: `перевыпустить @{username}`"
    ),
    "report.none": "— нет",
    "report.more": "… и ещё {count}",
    "age.days_hours": "{days} д {hours} ч",
    "age.hours_minutes": "{hours} ч {minutes} мин",
    "reminder.pending_digest": (
        "*Напоминание:* заявок, ждущих одобрения дольше {hours} ч: {count}\n"
        "{lines}\nОдобрить: `одобрить <id>`, отклонить: `отклонить <id> [причина]`."
    ),
    "reminder.activation_expiry": (
        "Напоминание: ваша учётная запись ERP ещё не активирована, а код активации действует только до "
        "{expires}. Активируйте её до этого времени{url}. Если код потерян или истёк, попросите "
        "администратора выпустить новый."
    ),
    "task.title": "Одобрить регистрацию в ERP: {full_name} ({position})",
    "task.description": (
        "Новый сотрудник зарегистрировался через бота Rocket.Chat и ждёт одобрения.\n\n"
        "Номер заявки: {id}\nФИО: {full_name}\nДолжность: {position} ({position_code})\n"
        "Пользователь Rocket.Chat: @{username}\nЗарегистрирован: {created}\n\n"
        "Решение — в Rocket.Chat (личное сообщение боту или канал администраторов):\n"
        "одобрить {id}\nотклонить {id} [причина]\n"
        "или в ERP. Бот напишет решение в комментарии и закроет задачу."
    ),
    "task.closed.approved": "Одобрено @{admin} через бота. Сотруднику сообщено.",
    "task.closed.rejected": "Отклонено @{admin} через бота.{reason} Сотруднику сообщено.",
    "task.closed.erp": "Решение принято в ERP: статус заявки теперь {status}. Сотруднику сообщено.",
    "task.reason": " Причина: {reason}.",
    "alerts.header.firing": "🔥 *Оповещение мониторинга* — активно: {firing}, снято: {resolved}",
    "alerts.header.resolved": "✅ *Мониторинг: проблема устранена* — оповещений: {resolved}",
    "alerts.line.firing": "• АКТИВНО [{severity}] *{name}*: {summary}",
    "alerts.line.resolved": "• снято [{severity}] *{name}*: {summary}",
    "alerts.more": "… и ещё {count}",
}


# Positions and departments keep the ERP's (Russian) names.
NAMES: dict[str, str] = {}
