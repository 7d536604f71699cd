using System.Diagnostics;

namespace ERCache.Redis.Tests.Infrastructure;

/// <summary>A Redis Cluster of three masters on loopback (no replicas, no persistence), made with
/// <c>redis-cli --cluster create</c>; its nodes' files live in a temporary folder removed on disposal.</summary>
internal sealed class RedisCluster : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("ercache-cluster-").FullName;

    public RedisCluster()
    {
        var started = new List<StoreServer>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                started.Add(StoreServer.Start(
                    ServerKind.Redis,
                    extraArguments: $"--cluster-enabled yes --cluster-config-file {Path.Combine(_folder, $"nodes-{i}.conf")} --cluster-node-timeout 5000 --dir {_folder}"));
            }

            Nodes = [.. started];
            RedisCli($"--cluster create {string.Join(' ', Nodes.Select(n => $"127.0.0.1:{n.Port}"))} --cluster-replicas 0 --cluster-yes");
            for (int attempt = 0; attempt < 100; attempt++) // the nodes agree on the slots: bounded, 10 s at most
            {
                if (Nodes.All(n => RedisCli($"-p {n.Port} cluster info").Contains("cluster_state:ok", StringComparison.Ordinal)))
                {
                    return;
                }

                Thread.Sleep(100);
            }

            throw new TimeoutException("The Redis Cluster did not reach cluster_state:ok.");
        }
        catch
        {
            // A constructor that throws is never disposed: stop what it started (no redis-server may outlive a test).
            foreach (var node in started)
            {
                node.Dispose();
            }

            Directory.Delete(_folder, recursive: true);
            throw;
        }
    }

    public StoreServer[] Nodes { get; }

    public string ConnectionString => string.Join(',', Nodes.Select(n => $"127.0.0.1:{n.Port}")) + ",connectTimeout=2000";

    /// <summary>Keys held by one node.</summary>
    public static long KeysOn(StoreServer node) => long.Parse(RedisCli($"-p {node.Port} dbsize").Trim(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Subscribers of the invalidation channel on one node: <paramref name="command"/> is <c>NUMSUB</c> (plain
    /// channels) or <c>SHARDNUMSUB</c> (sharded ones).</summary>
    public static long Subscribers(StoreServer node, string command)
    {
        string[] reply = RedisCli($"-p {node.Port} pubsub {command} ercache:invalidation").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return long.Parse(reply[^1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        foreach (var node in Nodes)
        {
            node.Dispose();
        }

        Directory.Delete(_folder, recursive: true);
    }

    private static string RedisCli(string arguments)
    {
        using var cli = Process.Start(new ProcessStartInfo("redis-cli", arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
        string output = cli.StandardOutput.ReadToEnd();
        cli.WaitForExit();
        return cli.ExitCode == 0 ? output : throw new InvalidOperationException($"redis-cli {arguments} failed: {output}{cli.StandardError.ReadToEnd()}");
    }
}
