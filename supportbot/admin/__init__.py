"""The admin app: the pages support staff use, behind a login (docs/learning.md#the-designer-page).

Today the NLU inbox, where designers review what the assistant may learn; later the agent inbox
for handed-off chats. Sanic, like the billing service; `python -m supportbot.admin` serves it and
`supportbot run` starts it on SUPPORTBOT_ADMIN_PORT.
"""
