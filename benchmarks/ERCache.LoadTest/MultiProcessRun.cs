using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using ERCache.Replay.Traces;
using ERCache.Samples.RankingService;

/// <summary>What one multi-process run measured, summed over the service instances.</summary>
internal sealed record MultiProcessResult(
    string Name, int Sent, int HttpErrors, TimeSpan Elapsed, double P50, double P99,
    long Inferred, long Direct, long Regional, long Fresh, long Failover, long Fallback, long WriteGroups, long WriteValues)
{
    private long Embeddings => Direct + Regional + Fresh + Failover + Fallback;

    public double ComputeSaved => Embeddings == 0 ? 0 : (double)(Direct + Regional) / Embeddings;

    public double FallbackRate => Embeddings == 0 ? 0 : (double)Fallback / Embeddings;
}

/// <summary>
/// Several real processes of the ranking-service sample on loopback ports, optionally sharing one <c>redis-server</c>
/// (started here on a free port, without persistence, and stopped by its process id), with the trace sent to them
/// round-robin, as a load balancer without affinity would.
/// </summary>
internal static class MultiProcessRun
{
    public static async Task<MultiProcessResult> ExecuteAsync(
        string name, TraceRequest[] requests, LoadSettings settings, double compression, int processes, int? redisPort)
    {
        var overrides = LoadRun.Overrides(compression, cache: true, failover: true, failureRate: 0);
        if (redisPort is int port)
        {
            overrides["ERCache:Regional:ConnectionString"] = $"127.0.0.1:{port}";
        }

        var services = new List<Process>();
        var clients = new List<HttpClient>();
        try
        {
            for (int p = 0; p < processes; p++)
            {
                int servicePort = FreePort();
                services.Add(StartService(servicePort, overrides));
                clients.Add(new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = LoadRun.MaxInFlight }) { BaseAddress = new Uri($"http://127.0.0.1:{servicePort}") });
            }

            foreach (var client in clients)
            {
                await WaitUntilServingAsync(client);
                for (int i = 0; i < 200; i++)
                {
                    using var warm = await client.PostAsJsonAsync("/rank", LoadRun.Body(-1 - i, i, settings.Items)); // users outside the trace
                }
            }

            var before = await SnapshotAsync(clients);
            var (sent, errors, measured, elapsed) = await LoadRun.SendAsync([.. clients], requests, settings);
            var after = await SnapshotAsync(clients);
            long Delta(Func<StatsResponse, long> read) => after.Sum(read) - before.Sum(read);
            long Source(string source) => Delta(s => LoadRun.Requests(s, source));
            long Counter(string prefix) => Delta(s => s.Counters.Where(c => c.Key.StartsWith(prefix, StringComparison.Ordinal)).Sum(c => c.Value));
            var result = new MultiProcessResult(
                name, sent, errors, elapsed, LoadRun.Percentile(measured, 0.50), LoadRun.Percentile(measured, 0.99),
                Delta(s => s.Towers.Values.Sum(t => t.Users)), Source("direct"), Source("regional"), Source("fresh"), Source("failover"), Source("fallback"),
                Counter("ercache.regional.write.groups{"), Counter("ercache.regional.write.values{"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {sent:N0} requests over {processes} processes in {elapsed.TotalSeconds:F1} s, p99 {result.P99:F2} ms, compute saved {result.ComputeSaved:P1}"));
            return result;
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }

            foreach (var service in services)
            {
                Stop(service);
            }
        }
    }

    /// <summary>Starts a <c>redis-server</c> on a free loopback port without persistence; the caller stops it.</summary>
    public static (Process Server, int Port) StartRedis()
    {
        int port = FreePort();
        var start = new ProcessStartInfo("redis-server") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no" })
        {
            start.ArgumentList.Add(arg);
        }

        var server = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start (install it with `bash .ci/install-servers`).");
        for (int attempt = 0; attempt < 100 && !Listening(port); attempt++)
        {
            Thread.Sleep(50); // a process starting: bounded, 5 s at most
        }

        return Listening(port) ? (server, port) : throw new TimeoutException($"redis-server did not listen on port {port}.");
    }

    /// <summary>Kills a process this run started and waits for it.</summary>
    public static void Stop(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }

        process.Dispose();
    }

    private static Process StartService(int port, Dictionary<string, string?> overrides)
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ERCache.Samples.RankingService.dll"));
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        start.ArgumentList.Add("--contentRoot");
        start.ArgumentList.Add(AppContext.BaseDirectory);
        foreach (var (key, value) in overrides)
        {
            start.ArgumentList.Add($"--{key}={value}");
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("The ranking service did not start.");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task WaitUntilServingAsync(HttpClient client)
    {
        for (int attempt = 0; attempt < 300; attempt++) // a process starting: bounded, 30 s at most
        {
            try
            {
                using var response = await client.GetAsync(new Uri("/stats", UriKind.Relative));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"The ranking service at {client.BaseAddress} did not start serving.");
    }

    private static async Task<StatsResponse[]> SnapshotAsync(IEnumerable<HttpClient> clients) =>
        await Task.WhenAll(clients.Select(async c => (await c.GetFromJsonAsync<StatsResponse>(new Uri("/stats", UriKind.Relative)))!));

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool Listening(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
