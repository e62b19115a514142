"""Русский каталог сообщений бота."""

MESSAGES: dict[str, str] = {
    "help.user": (
        "Я помогаю зарегистрироваться в ERP Photomatrix. Команды:\n"
        "• `регистрация` — зарегистрироваться (диалог в личных сообщениях)\n"
        "• `статус` — статус вашей регистрации\n"
        "• `отмена` — прервать регистрацию\n"
        "• `помощь` — эта справка"
    ),
    "help.admin": (
        "Команды администратора:\n"
        "• `статус @user` — статус сотрудника\n"
        "• `одобрить <id>` / `отклонить <id> [причина]` — решение по заявке\n"
        "• `заблокировать @user` / `разблокировать @user`\n"
        "• `должности` — список должностей\n"
        "• `должность <код> доступ вкл|выкл` — доступ к ERP для должности\n"
        "• `перевыпустить @user` — новый код активации (уйдёт пользователю в личные сообщения)\n"
        "• `аудит [n]` — последние n команд\n"
        "• `отчёт [дней]` — регистрации за последние дни (по умолчанию 7) и кто чего ждёт"
    ),
    "unknown": "Не понимаю. Напишите `помощь`, чтобы увидеть команды.",
    "internal_error": "Что-то пошло не так. Попробуйте ещё раз чуть позже.",
    "too_long": "Сообщение слишком длинное (больше {limit} символов).",
    "rate_limited": "Слишком много команд. Подождите минуту и попробуйте снова.",
    "not_admin": "Эта команда доступна только администраторам. Попытка записана в журнал.",
    "erp_unavailable": "ERP сейчас недоступна. Попробуйте позже.",
    "erp_error": "ERP отклонила запрос ({code}). Обратитесь к администратору.",
    "usage.register": "Использование: `регистрация`",
    "usage.status": "Использование: `статус` или `статус @user`",
    "usage.approve": "Использование: `одобрить <id>`",
    "usage.reject": "Использование: `отклонить <id> [причина]`",
    "usage.block": "Использование: `заблокировать @user`",
    "usage.unblock": "Использование: `разблокировать @user`",
    "usage.positions": "Использование: `должности`",
    "usage.position": "Использование: `должность <код> доступ вкл|выкл`",
    "usage.reissue": "Использование: `перевыпустить @user`",
    "usage.audit": "Использование: `аудит [n]`, n от 1 до 100",
    "usage.report": "Использование: `отчёт [дней]`, от 1 до 366 дней (по умолчанию 7)",
    "usage.help": "Использование: `помощь`",
    "usage.cancel": "Использование: `отмена`",
    "register.dm_sent": "@{username}, продолжим регистрацию в личных сообщениях.",
    "register.no_positions": "В ERP нет доступных должностей. Обратитесь к администратору.",
    "register.intro": "Начинаем регистрацию. В любой момент можно написать `отмена`.",
    "dialog.ask_name": "Введите ваше полное имя (ФИО), например: Иванов Иван Иванович.",
    "dialog.ask_position": "Выберите должность — отправьте её номер:\n{positions}",
    "dialog.ask_email": "Введите рабочий адрес электронной почты.",
    "dialog.ask_phone": "Введите телефон в формате +79991234567 или `-`, чтобы пропустить.",
    "dialog.summary": (
        "Проверьте данные:\n• ФИО: {full_name}\n• Должность: {position}\n• Email: {email}\n"
        "• Телефон: {phone}\nВсё верно? Ответьте `да` или `нет`."
    ),
    "dialog.invalid_name": "Имя должно быть от 2 до 150 символов: буквы, пробелы, дефисы и апострофы.",
    "dialog.invalid_position": "Нет такой должности: отправьте номер от 1 до {max}.",
    "dialog.invalid_email": "Это не похоже на адрес электронной почты.",
    "dialog.invalid_phone": "Телефон нужен в международном формате, например +79991234567.",
    "dialog.invalid_confirm": "Ответьте `да`, чтобы отправить заявку, или `нет`, чтобы отменить.",
    "dialog.cancelled": "Регистрация отменена. Начать заново: `регистрация`.",
    "dialog.nothing_to_cancel": "Отменять нечего.",
    "dialog.expired": "Время на регистрацию истекло ({minutes} мин). Начать заново: `регистрация`.",
    "dialog.erp_unavailable": (
        "ERP сейчас недоступна, заявка не отправлена. Ваши ответы сохранены: напишите `да` чуть позже, "
        "чтобы отправить её снова, или `отмена`."
    ),
    "dialog.field_rejected": "ERP не приняла поле ({field}): {detail}",
    "result.created": "Готово! Учётная запись ERP создана.",
    "result.pending": "Заявка №{id} отправлена администраторам на одобрение. Я сообщу о решении.",
    "result.no_access": (
        "Запись сотрудника №{id} создана. Ваша должность не даёт доступа к ERP, поэтому учётная запись "
        "не создаётся."
    ),
    "result.already": "Вы уже зарегистрированы.",
    "code.issued": (
        "Ваш логин в ERP: `{login}`\nКод активации: `{code}`\nКод действует до {expires}. "
        "Активируйте учётную запись{url}: введите логин, код и новый пароль (не короче 10 символов, "
        "буквы и цифры). Никому не сообщайте код."
    ),
    "code.url": " на странице {url}",
    "code.reissued_admin": "Новый код активации отправлен @{username} в личные сообщения.",
    "admins.request": (
        "Заявка на регистрацию №{id}: {full_name} (@{username}), должность «{position}».\n"
        "Одобрить: `одобрить {id}`\nОтклонить: `отклонить {id} [причина]`"
    ),
    "approval.approved_admin": "Заявка №{id} (@{username}) одобрена.",
    "approval.rejected_admin": "Заявка №{id} (@{username}) отклонена.",
    "approval.approved_user": "Ваша заявка №{id} одобрена.",
    "approval.rejected_user": "Ваша заявка №{id} отклонена.{reason}",
    "approval.reason": " Причина: {reason}",
    "block.done": "@{username} заблокирован(а).",
    "unblock.done": "@{username} разблокирован(а).",
    "staff.not_found": "Пользователь @{username} не зарегистрирован в ERP.",
    "staff.id_not_found": "Заявка №{id} не найдена.",
    "staff.invalid_state": "Действие невозможно в текущем статусе записи №{id}.",
    "status.none": "Вы ещё не зарегистрированы. Напишите `регистрация`.",
    "status.header": "Сотрудник №{id}: {full_name}, должность «{position}».",
    "status.pending_approval": "Статус: ожидает одобрения администратором.",
    "status.awaiting_activation": "Статус: учётная запись `{login}` создана и ждёт активации.",
    "status.active": "Статус: учётная запись `{login}` активна.",
    "status.rejected": "Статус: заявка отклонена.{reason}",
    "status.blocked": "Статус: учётная запись заблокирована.",
    "status.no_erp_access": "Статус: запись создана, должность не даёт доступа к ERP.",
    "status.unknown": "Статус: {status}.",
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
        "администратора выпустить новый (команда `перевыпустить @{username}`)."
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
