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
    /// <summary>With a store and <c>--deletions</c>: the deletion phase.</summary>
    public DeletionResult? Deletions { get; init; }

    /// <summary>With a store: the subscription-loss phase.</summary>
    public LossResult? Loss { get; init; }

    /// <summary>Regional writes the store refused as older than what it held, over the whole run (phases included).</summary>
    public long LateWrites { get; init; }

    /// <summary>Of <see cref="LateWrites"/>, those during the trace alone (before the deletion phase).</summary>
    public long LateWritesInTrace { get; init; }

    private long Embeddings => Direct + Regional + Fresh + Failover + Fallback;

    public double ComputeSaved => Embeddings == 0 ? 0 : (double)(Direct + Regional) / Embeddings;

    public double FallbackRate => Embeddings == 0 ? 0 : (double)Fallback / Embeddings;
}

/// <summary>
/// Several real processes of the ranking-service sample on loopback ports, optionally sharing one <c>redis-server</c> or
/// Garnet (started here on a free port, without persistence, and stopped by its process id), with the trace sent to them
/// round-robin, as a load balancer without affinity would. With a store, the trace is followed by the deletion phase
/// (<see cref="DeletionPhase"/>, with the trace sent again beside it) and the subscription-loss phase
/// (<see cref="SubscriptionLossPhase"/>).
/// </summary>
internal static class MultiProcessRun
{
    public static async Task<MultiProcessResult> ExecuteAsync(
        string name, TraceRequest[] requests, LoadSettings settings, double compression, int processes, int? storePort)
    {
        var overrides = LoadRun.Overrides(compression, cache: true, failover: true, failureRate: 0);
        if (storePort is int port)
        {
            overrides["ERCache:Regional:ConnectionString"] = $"127.0.0.1:{port}";
        }

        var (services, clients) = await StartServicesAsync(processes, overrides, settings.Items);
        try
        {
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
            if (storePort is not int store)
            {
                return result;
            }

            DeletionResult? deletions = null;
            if (settings.Deletions > 0)
            {
                var background = LoadRun.SendAsync([.. clients], requests, settings);
                deletions = await DeletionPhase.RunAsync([.. clients], requests, settings.Deletions, settings.Items);
                await background;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}, deletion phase: {deletions.Removals:N0} removals, removal returned to last other process applied p50 {deletions.Lag(0.5):F3} / p99 {deletions.Lag(0.99):F3} / max {deletions.Lag(1):F3} ms, not applied {deletions.NotApplied}, wrong answers {deletions.Wrong} of {deletions.Checked:N0}"));
            }

            var end = await SnapshotAsync(clients);
            long Late(StatsResponse[] stats) => stats.Sum(s => s.Counters.GetValueOrDefault("ercache.regional.write.dropped{reason=late}"));
            return result with
            {
                LateWritesInTrace = Late(after) - Late(before),
                Deletions = deletions,
                Loss = await MeasureLossAsync(name, requests, settings, processes, store),
                LateWrites = Late(end) - Late(before),
            };
        }
        finally
        {
            StopServices(services, clients);
        }
    }

    /// <summary>
    /// The subscription-loss phase, on services of its own that keep the sample's TTLs as configured (not divided by the
    /// trace's compression), so their local tiers hold what a production host's would over the phase: the trace is sent
    /// once to fill them, then in two rounds of an undisturbed pass and a pass that begins with a cut.
    /// </summary>
    private static async Task<LossResult> MeasureLossAsync(string name, TraceRequest[] requests, LoadSettings settings, int processes, int storePort)
    {
        var overrides = LoadRun.Overrides(compression: 1, cache: true, failover: true, failureRate: 0);
        overrides["ERCache:Regional:ConnectionString"] = $"127.0.0.1:{storePort}";
        var (services, clients) = await StartServicesAsync(processes, overrides, settings.Items);
        try
        {
            await LoadRun.SendAsync([.. clients], requests, settings);
            var loss = await SubscriptionLossPhase.RunAsync([.. clients], requests, settings, $"127.0.0.1:{storePort}", rounds: 2);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}, subscription-loss phase: direct {loss.AfterCut.Share(loss.AfterCut.Direct):P1} in passes after a cut, {loss.Undisturbed.Share(loss.Undisturbed.Direct):P1} in passes without"));
            return loss;
        }
        finally
        {
            StopServices(services, clients);
        }
    }

    /// <summary>Starts the service processes and waits until each serves (then warms each with 200 users outside the
    /// trace); stops what it started when one fails.</summary>
    private static async Task<(List<Process> Services, List<HttpClient> Clients)> StartServicesAsync(int processes, Dictionary<string, string?> overrides, int items)
    {
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
                    using var warm = await client.PostAsJsonAsync("/rank", LoadRun.Body(-1 - i, i, items)); // users outside the trace
                }
            }

            return (services, clients);
        }
        catch
        {
            StopServices(services, clients);
            throw;
        }
    }

    private static void StopServices(List<Process> services, List<HttpClient> clients)
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

    /// <summary>Starts <paramref name="store"/> (<c>redis</c> or <c>garnet</c>) on a free loopback port without
    /// persistence (Garnet with <c>--lua --lua-transaction-mode</c>: the store's writes are scripts, each atomic); the caller stops it. The servers are
    /// found as the tests find them: <c>ERCACHE_REDIS_SERVER</c> or <c>redis-server</c> on the PATH;
    /// <c>ERCACHE_GARNET_SERVER</c> or <c>~/.ercache-tools/garnet-server</c> (<c>bash .ci/install-servers</c> installs
    /// both).</summary>
    public static (Process Server, int Port) StartStore(string store)
    {
        int port = FreePort();
        string portText = port.ToString(CultureInfo.InvariantCulture);
        var (program, arguments) = store switch
        {
            "redis" => (Environment.GetEnvironmentVariable("ERCACHE_REDIS_SERVER") is { Length: > 0 } redis ? redis : "redis-server",
                new[] { "--port", portText, "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no" }),
            "garnet" => (Environment.GetEnvironmentVariable("ERCACHE_GARNET_SERVER") is { Length: > 0 } garnet ? garnet
                    : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".ercache-tools", "garnet-server"),
                new[] { "--port", portText, "--bind", "127.0.0.1", "--lua", "--lua-transaction-mode" }),
            _ => throw new ArgumentException($"--store must be redis or garnet (got {store}).", nameof(store)),
        };
        var start = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in arguments)
        {
            start.ArgumentList.Add(arg);
        }

        Process server;
        try
        {
            server = Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"{program} could not be started ({ex.Message}): install it with `bash .ci/install-servers`.", ex);
        }

        server.OutputDataReceived += (_, _) => { };
        server.ErrorDataReceived += (_, _) => { };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        for (int attempt = 0; attempt < 200 && !Listening(port); attempt++)
        {
            Thread.Sleep(50); // a process starting: bounded, 10 s at most
        }

        if (!Listening(port))
        {
            Stop(server);
            throw new TimeoutException($"{program} did not listen on port {port}.");
        }

        return (server, port);
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

    /// <summary>Every service's <c>/stats</c>, in the order given.</summary>
    internal static async Task<StatsResponse[]> SnapshotAsync(IEnumerable<HttpClient> clients) =>
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
