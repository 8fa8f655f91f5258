# SPDX-License-Identifier: LGPL-2.1-or-later
"""The org.podmgr1 service on the system bus, and the client the CLI uses.

    api.py        the API as a table
    arguments.py  the edge: each argument checked and made a typed value
    dispatch.py   serving the table on a connection, authorizing from it
    binding.py    each table entry bound to its code, checked at start-up
    work.py       blocking work off the event loop, in a bounded queue
    polkit.py     asking polkit whether a caller may act (for the dispatcher)
    service.py    the service: activation, idle exit, the Manager
    imagemethods.py the Manager's image and trust methods, loaded on first call
    podobjects.py Pod objects, kept current from systemd's signals
    transfers.py  pulls and imports in progress
    client.py     the CLI's side
"""
