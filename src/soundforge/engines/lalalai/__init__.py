"""The ``lalalai`` engine: stem separation through the LALAL.AI v1 cloud API.

Modules, one job each:

* ``client``   – the HTTP client, one method per endpoint, retries and error words;
* ``download`` – streaming download of result tracks, written as stems;
* ``stems``    – our stem names ↔ the API's, and which tasks a request needs;
* ``poller``   – the shared, rate-limited ``/check/`` loop (30 requests/min/key);
* ``preview``  – the locally cut 60-second preview;
* ``quota``    – what a job costs, the check before upload, the quota report;
* ``ledger``   – the installation's record of minutes consumed;
* ``keys``     – which license key to use, and how to name it without showing it;
* ``engine``   – ``LalalaiEngine``: options, the shared pieces, cost and quota;
* ``run``      – ``SeparationRun``: one separation, start to end;
* ``release``  – cancel-all, one job's tasks, and what a killed process left;
* ``leftovers``– the command line's record of work at the provider;
* ``errors``   – the provider's error types.

Nothing is imported here so that ``import soundforge.engines.lalalai.stems``
stays cheap (the web app's option forms only need the names).
"""
