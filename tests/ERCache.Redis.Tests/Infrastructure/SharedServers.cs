namespace ERCache.Redis.Tests.Infrastructure;

/// <summary>One redis-server and one Garnet for a test class; tests keep apart by user ids of their own.</summary>
public sealed class SharedServers : IDisposable
{
    private readonly Dictionary<ServerKind, StoreServer> _servers = StartAll();

    private long _nextUser = 1_000;

    internal StoreServer this[ServerKind kind] => _servers[kind];

    /// <summary>A block of user ids no other test of the class uses.</summary>
    public long Users(int count) => Interlocked.Add(ref _nextUser, count) - count;

    /// <summary>Both servers, or none: when one fails to start, the ones already started are stopped before the error
    /// reaches the test (a field initialiser that threw used to leave redis-server processes running).</summary>
    private static Dictionary<ServerKind, StoreServer> StartAll()
    {
        var started = new Dictionary<ServerKind, StoreServer>();
        try
        {
            foreach (var kind in new[] { ServerKind.Redis, ServerKind.Garnet })
            {
                started[kind] = StoreServer.Start(kind);
            }

            return started;
        }
        catch
        {
            foreach (var server in started.Values)
            {
                server.Dispose();
            }

            throw;
        }
    }

    public void Dispose()
    {
        foreach (var server in _servers.Values)
        {
            server.Dispose();
        }
    }
}
