namespace ERCache.Redis.Tests.Infrastructure;

/// <summary>One redis-server and one Garnet for a test class; tests keep apart by user ids of their own.</summary>
public sealed class SharedServers : IDisposable
{
    private readonly Dictionary<ServerKind, StoreServer> _servers = new()
    {
        [ServerKind.Redis] = StoreServer.Start(ServerKind.Redis),
        [ServerKind.Garnet] = StoreServer.Start(ServerKind.Garnet),
    };

    private long _nextUser = 1_000;

    internal StoreServer this[ServerKind kind] => _servers[kind];

    /// <summary>A block of user ids no other test of the class uses.</summary>
    public long Users(int count) => Interlocked.Add(ref _nextUser, count) - count;

    public void Dispose()
    {
        foreach (var server in _servers.Values)
        {
            server.Dispose();
        }
    }
}
